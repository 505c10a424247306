//! The migrations and static assets are embedded in the binary by rust-embed, which does not ask
//! Cargo to rebuild when a file is added to their folders: a new migration could otherwise be
//! left out of an incremental release build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=static");
}
