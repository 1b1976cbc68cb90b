"""Running the function set on one machine: the gateway, the event relay and the runner."""
