//! Several "hosts" on one machine: network namespaces on a bridge.
