//! The rules a JSON payload (a job's, or a named event's) must follow to be
//! stored: its nesting depth, and for an event its size and the bytes of
//! event payloads one job holds. Pure logic, used by `JobSpec::compile`, by
//! the supervisor's `emit` and by a job's overlap decision.

/// The deepest nesting of arrays and objects a payload may have: `1` and
/// `"x"` are 0 deep, `[1]` and `{"a": 1}` 1 deep, `[[1]]` 2 deep.
///
/// The store reads its JSON back with serde_json, which refuses input
/// nested 128 levels deep or more, and a job's payload is stored inside its
/// spec's record, one level down. A deeper payload would be written and
/// then not read back: at the next start its job's record would be
/// quarantined (the job's state, pause included, lost). A payload this deep
/// or less always reads back; the HTTP API's JSON bodies stop at the same
/// depth.
pub const MAX_PAYLOAD_DEPTH: usize = 126;

/// Checks `payload` against [`MAX_PAYLOAD_DEPTH`], without recursion (a
/// deep value must not exhaust the stack here); the reason when it is too
/// deep.
pub(crate) fn check_depth(payload: &serde_json::Value) -> Result<(), String> {
    check_depth_at(payload, MAX_PAYLOAD_DEPTH)
}

/// [`check_depth`] against `max` levels.
pub(crate) fn check_depth_at(payload: &serde_json::Value, max: usize) -> Result<(), String> {
    use serde_json::Value;
    // Each element with its depth; a container adds one to its children.
    let mut stack: Vec<(&Value, usize)> = vec![(payload, 0)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = depth + 1;
        if depth > max {
            return Err(format!(
                "the payload nests arrays and objects more than {max} levels deep"
            ));
        }
        stack.extend(children.map(|child| (child, depth)));
    }
    Ok(())
}

/// The longest JSON text an event's payload may have (64 KiB, as the HTTP
/// API's request bodies): a job holds the payload of each of its event
/// fires waiting in its queue or running, inside its state, which each
/// change of the job writes whole to the store.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 64 * 1024;

/// The most bytes of event payloads (their JSON text) one job holds in its
/// state: its queued fires', its runs in flight' and its waiting retry's.
/// An event fire that would hold more is not queued or started: it is
/// skipped as for a full queue ([`SkipReason::QueueFull`](crate::SkipReason)).
/// Without it, a queue of a thousand fires of 64 KiB each would be written
/// whole at each of the job's changes (gigabytes while it drains).
pub const MAX_HELD_EVENT_BYTES: usize = 1024 * 1024;

/// The length of `value`'s JSON text, counted without writing it.
pub(crate) fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Checks an event's payload against [`MAX_PAYLOAD_DEPTH`] and
/// [`MAX_EVENT_PAYLOAD_BYTES`]; the reason when it is refused.
pub(crate) fn check_event(payload: &serde_json::Value) -> Result<(), String> {
    check_depth(payload)?;
    let bytes = json_len(payload);
    if bytes > MAX_EVENT_PAYLOAD_BYTES {
        return Err(format!(
            "its JSON text is {bytes} bytes, above the limit of {MAX_EVENT_PAYLOAD_BYTES}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `inner` wrapped in `depth` arrays and objects, alternately.
    pub(crate) fn nested(depth: usize) -> serde_json::Value {
        let mut v = json!("leaf");
        for i in 0..depth {
            v = if i % 2 == 0 {
                json!([v])
            } else {
                json!({ "k": v })
            };
        }
        v
    }

    #[test]
    fn a_payload_up_to_the_limit_passes_and_one_level_more_is_refused() {
        assert_eq!(check_depth(&json!(null)), Ok(()));
        assert_eq!(check_depth(&json!({ "a": [1, {"b": 2}], "c": [] })), Ok(()));
        assert_eq!(check_depth(&nested(MAX_PAYLOAD_DEPTH)), Ok(()));
        let err = check_depth(&nested(MAX_PAYLOAD_DEPTH + 1)).expect_err("too deep");
        assert!(err.contains("126 levels"), "{err}");
        // A deep branch beside shallow ones is found.
        let wide = json!({ "a": 1, "b": [nested(MAX_PAYLOAD_DEPTH)], "c": "x" });
        assert!(check_depth(&wide).is_err());
    }
}
