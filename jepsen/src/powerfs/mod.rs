//! A FUSE filesystem that loses every write not fsynced when the power goes.
