//! Prices from AWS itself: `cost-tags prices refresh` reads instance shapes (EC2
//! DescribeInstanceTypes), on-demand prices (the AWS Price List) and spot price history
//! (EC2 DescribeSpotPriceHistory) for the cluster's instance types into a [`cache`] the
//! report prices from. Explicit `[pricing.instances]` entries always win over it.

pub mod cache;
pub(crate) mod merge;
pub(crate) mod refresh;
