//! placeholder
/// placeholder
pub fn cli_main() -> i32 {
    0
}
