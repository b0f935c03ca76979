complete -c rpmemd -s c -l config -d 'the only configuration file to read (must exist)' -r -F
complete -c rpmemd -s r -l remove -d 'remove the pool described by this pool set file (relative to "poolset-dir") instead of serving a session' -r
complete -c rpmemd -s t -l nthreads -d 'number of processing threads (0: automatic)' -r
complete -c rpmemd -l log-file -d 'log file location' -r
complete -c rpmemd -l poolset-dir -d 'pool set files directory ("$HOME" is replaced)' -r
complete -c rpmemd -l log-level -d 'the least severe level logged' -r -f -a "err\t''
warn\t''
notice\t''
info\t''
debug\t''"
complete -c rpmemd -s V -l version -d 'print the version and exit'
complete -c rpmemd -s h -l help -d 'print the help and exit'
complete -c rpmemd -s l -l list -d 'list the pool set files of "poolset-dir" instead of serving a session (our extension)'
complete -c rpmemd -s f -l force -d 'ignore errors when removing a pool'
complete -c rpmemd -s s -l pool-set -d 'with "--remove", remove the pool set file too'
complete -c rpmemd -l persist-apm -d 'enable the Appliance Persistency Method'
complete -c rpmemd -l persist-general -d 'enable the General Purpose Server Persistency Method'
complete -c rpmemd -l use-syslog -d 'log through syslog'
complete -c rpmemd -l dump-config -d 'print the effective configuration and exit'
complete -c rpmemd -l check-config -d 'check the configuration as a session would use it, and exit'
