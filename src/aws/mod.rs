//! The only code that talks to AWS, one client a file, all through the standard SDK
//! environment (`AWS_ENDPOINT_URL`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_REGION`,
//! the credentials chain) unchanged, each call bounded by the caller's deadline:
//!
//! - [`imds`]: the instance's identity from IMDSv2 (compute nodes, node mode);
//! - [`ec2`]: the instance's tags, and the cluster's instances for the convergence;
//! - [`ec2_catalog`]: instance types' CPUs and GPUs, and spot price histories;
//! - [`price_list`]: on-demand prices (Price List API);
//! - [`budgets`]: the account's AWS Budgets (head node);
//! - [`cost_explorer`]: what AWS billed, per project tag (`report --billed`);
//! - [`sdk`]: one configuration and runtime per run; [`http_client`]: the one HTTPS stack.

pub(crate) mod budgets;
pub(crate) mod cost_explorer;
pub(crate) mod ec2;
pub(crate) mod ec2_catalog;
pub(crate) mod http_client;
pub(crate) mod imds;
pub(crate) mod price_list;
pub(crate) mod sdk;
