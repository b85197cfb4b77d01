//! What ParallelCluster writes on its nodes and cost-tags reads: [`cfnconfig`] (the
//! cluster's name) and [`fleet_config`] (queues, instance types, capacity types).

pub(crate) mod cfnconfig;
pub(crate) mod fleet_config;
