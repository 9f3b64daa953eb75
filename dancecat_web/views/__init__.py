"""Browser views: the sign-in page and the seed's result routes (HTML or downloads)."""
