//! The head node's view of the whole cluster: the [`sweep`] that untags idle instances
//! (`reconcile --cluster`), paced by [`pacer`].

pub mod pacer;
pub mod sweep;
