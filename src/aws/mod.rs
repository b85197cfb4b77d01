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

pub mod budgets;
pub mod cost_explorer;
pub mod ec2;
pub mod ec2_catalog;
pub mod http_client;
pub mod imds;
pub mod price_list;
pub mod sdk;
