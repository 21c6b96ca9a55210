"""Traffic control: which node a listener goes to. Pure functions over node reports."""
