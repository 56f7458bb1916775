#ifndef CENTER_H
#define CENTER_H
#define MAX_VALUES 100000

/* The point whose mean absolute distance to the n values is to be minimised. */
double center(const double *values, int n);

#endif
