//! The `drawbridge` binary's library half: the demo data set and the wiring of all components
//! into one process, shared by `main` and the end-to-end tests.

pub mod audit;
pub mod demo;
