//! A fake of the gestimum API: not written yet (issue 4).
