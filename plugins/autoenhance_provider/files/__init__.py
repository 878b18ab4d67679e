"""Files in any storage Airflow can reach, one concern a module.

- :mod:`.media`: the image types Autoenhance takes (extensions, MIME types, magic bytes, names).
- :mod:`.storage`: paths and upload sources in any storage, destination folders, temporary names.
- :mod:`.integrity`: whether a body is a whole image.
- :mod:`.targets`: where one downloaded image is written, verified before it gets its name.
- :mod:`.manifest`: which file in a download folder holds which image.
"""
