//! A fake of the maarch API: not written yet (issue 4).
