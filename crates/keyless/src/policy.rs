//! (verification side: being written)
