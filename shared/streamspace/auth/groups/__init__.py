"""Groups and memberships: the admin operations (`service`) over `groups` and `group_members` (`store`)."""
