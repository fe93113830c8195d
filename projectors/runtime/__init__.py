"""What every projector shares: the consume loop and the offsets kept with the rows."""
