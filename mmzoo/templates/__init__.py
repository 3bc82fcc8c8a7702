"""Package data: the folder `mmzoo plugin new` copies (templates/plugin, with {{placeholders}})."""
