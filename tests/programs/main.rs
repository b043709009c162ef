//! moqt as programs and files: the `moqt` command, the C examples and C tests built against the
//! generated header and libmoqt.so (as C, C++, under sanitizers and Valgrind), the demo script,
//! packaging, and the header's own checks. One binary, so the crate is linked once.

mod build;
mod process;
#[path = "../it/common/relay.rs"]
mod relay;

mod c_examples;
mod churn;
mod cli;
mod demo;
mod gst;
mod header;
mod layers;
mod media;
mod packaging;
