"""bf42-stats: the reference service — a Battlefield 1942 statistics tracker whose four
background jobs are instrumented with jobcorr."""
