//! `terminal-agent serve`: the local HTTP/WebSocket card service.
