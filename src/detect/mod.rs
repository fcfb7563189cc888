//! What is wrong: the detectors, each a plain structure with its clock passed in, that decide
//! from what the audit feeds them (refusals, credentials, client products, expired user tokens)
//! and return their decisions; `audit` writes what they decide. `outbox` holds what this replica
//! counted for the cluster (`cluster` takes it in the background).

pub(crate) mod approved;
pub(crate) mod burst;
pub(crate) mod expiry;
pub(crate) mod raised;
pub(crate) mod sharing;
