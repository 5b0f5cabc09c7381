//! A fake of the scim API: not written yet (issue 4).
