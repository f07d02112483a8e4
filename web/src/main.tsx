import { render } from 'preact';
import { App } from './app';
import { boot, takeEndedReason } from './session';
import './styles.css';

takeEndedReason();
void boot();
render(<App />, document.getElementById('app')!);
