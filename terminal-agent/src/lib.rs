//! The counter's local card service for the social security card (社会保障卡), safe to expose to web pages
//! on the same machine, and its diagnostic command line.

pub mod cli;
pub mod service;
