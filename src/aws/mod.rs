//! The only code that talks to AWS: the instance's identity from IMDSv2, its tags through
//! EC2, and the account's budgets (head node only). All of it uses the standard SDK
//! environment (`AWS_ENDPOINT_URL`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_REGION`,
//! the credentials chain) unchanged, and is bounded by the caller's deadline.

pub mod budgets;
pub mod cost_explorer;
pub mod ec2;
pub mod ec2_catalog;
pub mod http_client;
pub mod imds;
pub mod price_list;
pub mod sdk;
