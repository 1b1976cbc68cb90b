"""The web portal: server-rendered pages for people with a browser (log in, launch, watch, manage).

The pages call the same library services as the JSON API with the same `Principal`, so every
authorization and business rule lives in one place. What is portal-only lives here: the login
cookie, CSRF tokens, the Content-Security-Policy and the HTML.
"""
