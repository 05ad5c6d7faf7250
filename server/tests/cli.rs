//! stub

#[test]
fn stub() {}
