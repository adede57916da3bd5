//! What an operator relies on: `/metrics` counting requests, webhooks and DHMAD calls; the
//! favicon; the real binary's command line (`--help`, `--version`, settings errors, a taken
//! port, `healthcheck`) and its access log; a shutdown that lets the jobs finish their call;
//! migrations applied beside another instance's.

mod binary;
mod metrics;
mod migrations;
mod shutdown;
