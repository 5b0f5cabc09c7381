//! A fake of the pleasanter API: not written yet (issue 4).
