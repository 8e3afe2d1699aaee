//! Turning a decoded input document into the operation's typed input.
//!
//! Query strings, URI labels and form bodies carry every scalar as a string; typed inputs ask
//! for numbers and booleans. [`from_value`] coerces those strings where the input type asks.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The typed input of an operation from its decoded members.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(value)
}
