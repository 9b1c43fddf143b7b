"""Owen, the labour exchange: the scheduler, its workers and controllers, the task
generators (filesplit, job), Owen's data records and S-expressions."""
