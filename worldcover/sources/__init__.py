"""Where input data come from: STAC APIs (real presets or the simulated archive) and Sentinel Hub."""
