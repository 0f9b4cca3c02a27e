//! (signing side: being written)
