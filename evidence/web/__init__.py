"""The legal desk: a web app and a JSON API on the same store and library as the CLI."""
