"""Browser views: the sign-in page and the path-style result routes (HTML or downloads)."""
