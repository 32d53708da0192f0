module etcdload

go 1.19
