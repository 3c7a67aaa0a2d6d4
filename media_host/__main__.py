from media_host.main import main

raise SystemExit(main())
