"""Small languages without I/O: name patterns and selectors, the field-path language,
the object diff."""
