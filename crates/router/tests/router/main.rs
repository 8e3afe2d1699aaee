//! Integration tests of the router through its public API (one test binary, several modules).

mod fuzz;
mod matching;
mod reference;
mod support;
mod weighted;
