//! Unit tests of the codec and the key layouts.
