//! One module per command group.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod hook;
pub(crate) mod incident;
pub(crate) mod oauth;
pub(crate) mod policy;
pub(crate) mod scan;
pub(crate) mod token;
pub(crate) mod webhook;
