//! tillmesh binary
fn main() {}
