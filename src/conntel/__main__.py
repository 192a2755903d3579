from conntel.cli import main

main()
