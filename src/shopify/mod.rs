//! The Shopify Admin GraphQL target. Only this module (and the sandbox) knows GraphQL.

pub mod bulk;
pub mod client;
pub mod export;
pub mod images;
pub mod operations;
pub mod read;
