"""Users: validation, the API's user object and the admin operations (`service`) over the `users`
table (`store`)."""
