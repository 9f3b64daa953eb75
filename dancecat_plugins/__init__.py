"""DanceCat's built-in plugins, registered through the ``dancecat`` entry-point group."""
