"""Sessions by state over time: sampled on the idle-sweep tick, read by the dashboard and the API."""
