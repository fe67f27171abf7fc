//! What gophercap asks of the operating system beyond files and sockets.

pub mod privileges;
