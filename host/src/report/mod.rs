//! Pictures and logs: training curves, alpha heat maps, cell diagrams, CSV, progress bars.
