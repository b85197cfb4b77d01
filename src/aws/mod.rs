//! The only code that talks to AWS: the instance's identity from IMDSv2, and its tags
//! through EC2. Both use the standard SDK environment (`AWS_ENDPOINT_URL`,
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_REGION`, the credentials chain) unchanged,
//! and both are bounded by the caller's deadline.

pub mod ec2;
pub mod imds;
