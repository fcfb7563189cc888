//! What cluster mode asks of the parts of the tap that share state through the store: the audit
//! (bursts, shared credentials, once-only findings), the checklist (rotations) and the sessions.
//! Each puts what the cluster must decide once where the cluster takes it; only `cluster` knows
//! whether the store is up, and when it cannot reach it, it tells each part to decide alone.

/// A part of the tap that shares state in cluster mode.
pub(crate) trait Shares: Send + Sync {
    /// The store cannot be reached: what waited for the cluster is decided by this replica
    /// alone, as without a cluster.
    fn decide_alone(&self);
}
