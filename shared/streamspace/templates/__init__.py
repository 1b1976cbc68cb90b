"""Templates: the Template objects of the sessions namespace in the REST shape, their admin changes
and audit (`service`), over the code that reads and writes them (`store`: the Template objects on
the Kubernetes API server, and `template_index`, the reconcilers' record of each Template as last
validated). The rules without I/O are `streamspace.domain.templates` and `streamspace.domain.warm`."""
